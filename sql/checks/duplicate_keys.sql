-- duplicate_keys: sales rows that repeat an (date, item_id, location_id) key.
--
-- kind:       rows (the violating rows are quarantined and left out of every feature)
-- inputs:     sales
-- parameters: $1 run date 'YYYY-MM-DD', $2 cutoff 'YYYY-MM-DD' (unused)
-- output:     table_name, date, item_id, location_id, units, revenue, price, reason
--             (every copy of a key after the first; copies are ordered by units, revenue, price, so
--             the row kept is the same on every run)
SELECT
    'sales' AS table_name,
    CAST(date AS DATE) AS date,
    CAST(item_id AS VARCHAR) AS item_id,
    CAST(location_id AS VARCHAR) AS location_id,
    CAST(units AS DOUBLE) AS units,
    CAST(revenue AS DOUBLE) AS revenue,
    CAST(price AS DOUBLE) AS price,
    'duplicate key: copy ' || CAST(copy AS VARCHAR) || ' of ' || CAST(copies AS VARCHAR) AS reason
FROM (
    SELECT
        s.*,
        ROW_NUMBER() OVER (PARTITION BY date, item_id, location_id ORDER BY units, revenue, price) AS copy,
        COUNT(*) OVER (PARTITION BY date, item_id, location_id) AS copies
    FROM sales s
) d
WHERE copy > 1
