-- series: every series of the target table with its category, for choosing the series the factor
-- regression reads.
--
-- role:   analysis (reads the feature tables of the cutoff: target, attributes)
-- grain:  item_id × location_id
-- output: item_id, location_id, category (the item's, or 'all' when unknown)
SELECT
    t.item_id,
    t.location_id,
    COALESCE(MAX(a.category), 'all') AS category
FROM (SELECT DISTINCT item_id, location_id FROM target) t
LEFT JOIN attributes a
  ON a.item_id = t.item_id AND a.location_id = t.location_id
GROUP BY t.item_id, t.location_id
