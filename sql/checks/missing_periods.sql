-- missing_periods: days between the first sale and the cutoff without a single sales row
-- anywhere (a load that did not arrive).
--
-- kind:       findings (reported and quarantined as a record; no row is left out)
-- inputs:     sales
-- parameters: $1 run date (unused), $2 cutoff 'YYYY-MM-DD'
-- output:     table_name, date, item_id, location_id, units, revenue, price, reason
--             (item_id, location_id and the measures are NULL)
WITH days AS (
    SELECT DISTINCT CAST(CAST(CAST(date AS DATE) AS INT) AS BIGINT) AS day
    FROM sales
    WHERE CAST(date AS DATE) <= CAST($2 AS DATE)
),
span AS (
    SELECT unnest(range(MIN(day), MAX(day) + 1)) AS day FROM days
)
SELECT
    'sales' AS table_name,
    CAST(CAST(s.day AS INT) AS DATE) AS date,
    CAST(NULL AS VARCHAR) AS item_id,
    CAST(NULL AS VARCHAR) AS location_id,
    CAST(NULL AS DOUBLE) AS units,
    CAST(NULL AS DOUBLE) AS revenue,
    CAST(NULL AS DOUBLE) AS price,
    'no sales rows on this day' AS reason
FROM span s
LEFT JOIN days d ON d.day = s.day
WHERE d.day IS NULL
