-- level_breaks: series whose last 28 days sold over 10× (or under a tenth of) their daily mean
-- over the 91 days before, for series selling at least 1 unit a day before (a unit change, a
-- double load, a lost feed).
--
-- kind:       findings (reported and quarantined as a record; no row is left out)
-- inputs:     sales
-- parameters: $1 run date (unused), $2 cutoff 'YYYY-MM-DD'
-- output:     table_name, date (the cutoff), item_id, location_id, units (recent daily mean),
--             revenue (NULL), price (NULL), reason
WITH params AS (
    SELECT CAST(CAST(CAST($2 AS DATE) AS INT) AS BIGINT) AS cutoff_day
),
per_series AS (
    SELECT
        s.item_id,
        s.location_id,
        SUM(CASE WHEN s.day > p.cutoff_day - 28 THEN s.units ELSE 0 END) / 28.0 AS recent,
        SUM(CASE WHEN s.day <= p.cutoff_day - 28 THEN s.units ELSE 0 END) / 91.0 AS before
    FROM params p CROSS JOIN (
        SELECT item_id, location_id, CAST(CAST(CAST(date AS DATE) AS INT) AS BIGINT) AS day,
               CAST(units AS DOUBLE) AS units
        FROM sales
    ) s
    WHERE s.day > p.cutoff_day - 119 AND s.day <= p.cutoff_day
    GROUP BY s.item_id, s.location_id
)
SELECT
    'sales' AS table_name,
    CAST($2 AS DATE) AS date,
    CAST(item_id AS VARCHAR) AS item_id,
    CAST(location_id AS VARCHAR) AS location_id,
    recent AS units,
    CAST(NULL AS DOUBLE) AS revenue,
    CAST(NULL AS DOUBLE) AS price,
    'level break: ' || CAST(ROUND(recent, 2) AS VARCHAR) || ' a day over the last 28 days against '
        || CAST(ROUND(before, 2) AS VARCHAR) || ' before' AS reason
FROM per_series
WHERE before >= 1.0 AND (recent > 10 * before OR recent < before / 10)
