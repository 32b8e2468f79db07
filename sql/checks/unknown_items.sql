-- unknown_items: sales of an item the items table does not list (checked only when it has rows).
--
-- kind:       rows (quarantined and left out)
-- inputs:     sales, items
-- parameters: $1 run date, $2 cutoff (unused)
-- output:     table_name, date, item_id, location_id, units, revenue, price, reason
SELECT
    'sales' AS table_name,
    CAST(s.date AS DATE) AS date,
    CAST(s.item_id AS VARCHAR) AS item_id,
    CAST(s.location_id AS VARCHAR) AS location_id,
    CAST(s.units AS DOUBLE) AS units,
    CAST(s.revenue AS DOUBLE) AS revenue,
    CAST(s.price AS DOUBLE) AS price,
    'item not in the items table' AS reason
FROM sales s
-- A scalar count, not EXISTS: an uncorrelated EXISTS is planned as a join of every sales row with
-- every item.
WHERE (SELECT COUNT(*) FROM items) > 0
  AND NOT EXISTS (SELECT 1 FROM items i WHERE i.item_id = s.item_id)
