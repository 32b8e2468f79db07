-- user_known: the user's known-in-advance covariates (plans, schedules, weather forecasts) per key
-- and period, as they were known at the cutoff.
--
-- role:       known (values cover the history and the horizon after the cutoff)
-- grain:      name × item_id × location_id × date (the period's first day). A NULL item_id means
--             every item, a NULL location_id every location (the models resolve the keys per
--             series: no row is expanded to every series).
-- inputs:     sales (for the first period), known_covariates (optional: no rows when absent)
-- parameters: $1 cutoff 'YYYY-MM-DD', $2 period length in days, $3 horizon in periods,
--             $4 anchor: a day (days since 1970-01-01) on which periods start
-- output:     name, item_id, location_id, date,
--             value     the period's mean value; a categorical value (`label`, no `value`) becomes
--                       the indicator covariate `name=label` with value 1
--             known_at  the latest revision date used (NULL: known from the start)
-- order:      name, item_id, location_id, date
--
-- Point in time: a row with `known_at` after the cutoff is not known yet and is ignored; among the
-- rows known by then for one (name, item, location, date), the one with the latest `known_at` wins
-- (a row without `known_at` counts as known from the start: any dated revision replaces it).
-- Dates outside the span from the first sale to the end of the horizon are left out.
WITH params AS (
    SELECT
        CAST(CAST(CAST($1 AS DATE) AS INT) AS BIGINT) AS cutoff_day,
        CAST($2 AS BIGINT) AS period,
        CAST($3 AS BIGINT) AS horizon,
        CAST($4 AS BIGINT) AS anchor
),
span AS (
    SELECT
        b.first_day - (((b.first_day - p.anchor) % p.period) + p.period) % p.period AS first_pday,
        p.cutoff_day - (((p.cutoff_day - p.anchor) % p.period) + p.period) % p.period
            + p.period * (p.horizon + 1) AS end_day,
        p.period,
        p.anchor,
        p.cutoff_day
    FROM params p CROSS JOIN (
        SELECT MIN(CAST(CAST(CAST(date AS DATE) AS INT) AS BIGINT)) AS first_day FROM sales
    ) b
),
known AS (
    SELECT
        CASE WHEN k.value IS NULL THEN CAST(k.name AS VARCHAR) || '=' || CAST(k.label AS VARCHAR)
             ELSE CAST(k.name AS VARCHAR) END AS name,
        CAST(k.item_id AS VARCHAR) AS item_id,
        CAST(k.location_id AS VARCHAR) AS location_id,
        k.day,
        k.day - (((k.day - s.anchor) % s.period) + s.period) % s.period AS pday,
        COALESCE(CAST(k.value AS DOUBLE), 1.0) AS value,
        k.known_day
    FROM span s CROSS JOIN (
        SELECT
            name, item_id, location_id, value, label,
            CAST(CAST(CAST(date AS DATE) AS INT) AS BIGINT) AS day,
            CAST(CAST(CAST(known_at AS DATE) AS INT) AS BIGINT) AS known_day
        FROM known_covariates
        WHERE name IS NOT NULL AND (value IS NOT NULL OR label IS NOT NULL)
    ) k
    WHERE (k.known_day IS NULL OR k.known_day <= s.cutoff_day)
      AND k.day >= s.first_pday AND k.day < s.end_day
      AND (k.value IS NULL OR (NOT isnan(CAST(k.value AS DOUBLE)) AND abs(CAST(k.value AS DOUBLE)) < 1e300))
),
ranked AS (
    SELECT
        name, item_id, location_id, day, pday, value, known_day,
        ROW_NUMBER() OVER (
            PARTITION BY name, item_id, location_id, day
            ORDER BY known_day DESC NULLS LAST, value DESC
        ) AS revision
    FROM known
)
SELECT
    r.name,
    r.item_id,
    r.location_id,
    CAST(CAST(r.pday AS INT) AS DATE) AS date,
    AVG(r.value) AS value,
    CAST(CAST(MAX(r.known_day) AS INT) AS DATE) AS known_at
FROM ranked r
WHERE r.revision = 1
GROUP BY r.name, r.item_id, r.location_id, r.pday
ORDER BY name, item_id NULLS FIRST, location_id NULLS FIRST, date
