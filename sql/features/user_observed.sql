-- user_observed: the user's observed covariates (weather as it was, footfall, …) per key and
-- period, up to the cutoff.
--
-- role:       past (reads nothing dated after the cutoff)
-- grain:      name × item_id × location_id × date (the period's first day). A NULL item_id means
--             every item, a NULL location_id every location.
-- inputs:     sales (for the first period), observed_covariates (optional: no rows when absent)
-- parameters: $1 cutoff 'YYYY-MM-DD', $2 period length in days, $4 anchor
-- output:     name, item_id, location_id, date,
--             value  the period's mean value; a categorical value (`label`, no `value`) becomes the
--                    indicator covariate `name=label` with value 1
-- order:      name, item_id, location_id, date
--
-- A model reads the value of a period only alongside that period's demand (in its history),
-- never for the periods it forecasts.
WITH params AS (
    SELECT
        CAST(CAST(CAST($1 AS DATE) AS INT) AS BIGINT) AS cutoff_day,
        CAST($2 AS BIGINT) AS period,
        CAST($4 AS BIGINT) AS anchor
),
span AS (
    SELECT
        b.first_day - (((b.first_day - p.anchor) % p.period) + p.period) % p.period AS first_pday,
        p.period,
        p.anchor,
        p.cutoff_day
    FROM params p CROSS JOIN (
        SELECT MIN(CAST(CAST(CAST(date AS DATE) AS INT) AS BIGINT)) AS first_day FROM sales
    ) b
),
observed AS (
    SELECT
        CASE WHEN o.value IS NULL THEN CAST(o.name AS VARCHAR) || '=' || CAST(o.label AS VARCHAR)
             ELSE CAST(o.name AS VARCHAR) END AS name,
        CAST(o.item_id AS VARCHAR) AS item_id,
        CAST(o.location_id AS VARCHAR) AS location_id,
        o.day - (((o.day - s.anchor) % s.period) + s.period) % s.period AS pday,
        COALESCE(CAST(o.value AS DOUBLE), 1.0) AS value
    FROM span s CROSS JOIN (
        SELECT
            name, item_id, location_id, value, label,
            CAST(CAST(CAST(date AS DATE) AS INT) AS BIGINT) AS day
        FROM observed_covariates
        WHERE name IS NOT NULL AND (value IS NOT NULL OR label IS NOT NULL)
    ) o
    WHERE o.day >= s.first_pday AND o.day <= s.cutoff_day
      AND (o.value IS NULL OR (NOT isnan(CAST(o.value AS DOUBLE)) AND abs(CAST(o.value AS DOUBLE)) < 1e300))
)
SELECT
    o.name,
    o.item_id,
    o.location_id,
    CAST(CAST(o.pday AS INT) AS DATE) AS date,
    AVG(o.value) AS value
FROM observed o
GROUP BY o.name, o.item_id, o.location_id, o.pday
ORDER BY name, item_id NULLS FIRST, location_id NULLS FIRST, date
