-- role:       plan input
-- grain:      item × location
-- inputs:     inventory (optional: no rows when absent)
-- parameters: $1 cutoff (date)
-- output:     item_id, location_id, stock_date (the last inventory day on or before the cutoff),
--             on_hand (units at the end of that day)
--
-- One aggregate over the inventory (its state is one row per series, and it spills), rather than
-- numbering every inventory row of a series by date, which sorts the whole table.
SELECT
    CAST(item_id AS VARCHAR) AS item_id,
    CAST(location_id AS VARCHAR) AS location_id,
    MAX(CAST(date AS DATE)) AS stock_date,
    LAST_VALUE(CAST(on_hand AS DOUBLE) ORDER BY CAST(date AS DATE)) AS on_hand
FROM inventory
WHERE CAST(date AS DATE) <= $1 AND on_hand IS NOT NULL
GROUP BY 1, 2
