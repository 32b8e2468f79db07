-- negative_units: sales rows with negative units (returns).
--
-- kind:       rows; quarantined and left out only when settings say `returns = "drop"`; with
--             `returns = "net"` (the default) they are counted and kept, netting against sales
-- inputs:     sales
-- parameters: $1 run date, $2 cutoff (unused)
-- output:     table_name, date, item_id, location_id, units, revenue, price, reason
SELECT
    'sales' AS table_name,
    CAST(date AS DATE) AS date,
    CAST(item_id AS VARCHAR) AS item_id,
    CAST(location_id AS VARCHAR) AS location_id,
    CAST(units AS DOUBLE) AS units,
    CAST(revenue AS DOUBLE) AS revenue,
    CAST(price AS DOUBLE) AS price,
    'negative units (a return): ' || CAST(CAST(units AS DOUBLE) AS VARCHAR) AS reason
FROM sales
WHERE units < 0
