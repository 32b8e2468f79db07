-- future_dates: sales dated after the run date (a clock or load error: they cannot have happened).
--
-- kind:       rows (quarantined and left out)
-- inputs:     sales
-- parameters: $1 run date 'YYYY-MM-DD', $2 cutoff (unused)
-- output:     table_name, date, item_id, location_id, units, revenue, price, reason
SELECT
    'sales' AS table_name,
    CAST(date AS DATE) AS date,
    CAST(item_id AS VARCHAR) AS item_id,
    CAST(location_id AS VARCHAR) AS location_id,
    CAST(units AS DOUBLE) AS units,
    CAST(revenue AS DOUBLE) AS revenue,
    CAST(price AS DOUBLE) AS price,
    'dated after the run date ' || CAST(CAST($1 AS DATE) AS VARCHAR) AS reason
FROM sales
WHERE CAST(date AS DATE) > CAST($1 AS DATE)
