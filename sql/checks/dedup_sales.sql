-- dedup_sales: the sales table with one row per (date, item_id, location_id): the first copy in the
-- order duplicate_keys.sql uses (units, revenue, price), so exactly the copies it quarantined go.
--
-- kind:       view (not a check: `sales` is replaced by it when duplicate_keys found rows)
-- inputs:     sales (as read from the lake)
-- output:     date, item_id, location_id, units, revenue, price
SELECT date, item_id, location_id, units, revenue, price
FROM (
    SELECT
        CAST(date AS DATE) AS date,
        CAST(item_id AS VARCHAR) AS item_id,
        CAST(location_id AS VARCHAR) AS location_id,
        CAST(units AS DOUBLE) AS units,
        CAST(revenue AS DOUBLE) AS revenue,
        CAST(price AS DOUBLE) AS price,
        ROW_NUMBER() OVER (PARTITION BY date, item_id, location_id ORDER BY units, revenue, price) AS copy
    FROM sales
) d
WHERE copy = 1
