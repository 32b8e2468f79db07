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
    -- Only the keys that repeat are windowed: a window over all of sales would hold the whole
    -- table in memory (window operators do not spill), while the grouping below can spill.
    SELECT
        s.*,
        k.copies,
        ROW_NUMBER() OVER (PARTITION BY s.date, s.item_id, s.location_id ORDER BY s.units, s.revenue, s.price) AS copy
    FROM sales s
    JOIN (
        SELECT date, item_id, location_id, COUNT(*) AS copies
        FROM sales
        GROUP BY date, item_id, location_id
        HAVING COUNT(*) > 1
    ) k ON s.date = k.date AND s.item_id = k.item_id AND s.location_id = k.location_id
) d
WHERE copy > 1
