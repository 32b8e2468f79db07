-- bad_covariates: rows of closures and of the user's covariate tables that cannot be used, each
-- with its reason (the feature queries leave them out).
--
-- kind:       findings (recorded; the rows are ignored by the features)
-- inputs:     closures, known_covariates, observed_covariates, sales (the known keys)
-- parameters: $1 run date (unused), $2 cutoff (unused)
-- output:     table_name, date, item_id, location_id, units (the value), revenue, price, reason
--
-- Reasons: a closure ending before it starts; a covariate without a value or a label; a value
-- that is not a finite number; an item or location that has no sales (the row reaches no series).
WITH covariates AS (
    SELECT 'known_covariates' AS table_name, CAST(date AS DATE) AS date, CAST(item_id AS VARCHAR) AS item_id,
           CAST(location_id AS VARCHAR) AS location_id, CAST(name AS VARCHAR) AS name,
           CAST(value AS DOUBLE) AS value, CAST(label AS VARCHAR) AS label
    FROM known_covariates
    UNION ALL
    SELECT 'observed_covariates', CAST(date AS DATE), CAST(item_id AS VARCHAR), CAST(location_id AS VARCHAR),
           CAST(name AS VARCHAR), CAST(value AS DOUBLE), CAST(label AS VARCHAR)
    FROM observed_covariates
),
items AS (SELECT DISTINCT CAST(item_id AS VARCHAR) AS item_id FROM sales),
locations AS (SELECT DISTINCT CAST(location_id AS VARCHAR) AS location_id FROM sales),
keyed AS (
    SELECT c.*, i.item_id AS known_item, l.location_id AS known_location
    FROM covariates c
    LEFT JOIN items i ON i.item_id = c.item_id
    LEFT JOIN locations l ON l.location_id = c.location_id
)
SELECT
    'closures' AS table_name,
    CAST(start_date AS DATE) AS date,
    CAST(item_id AS VARCHAR) AS item_id,
    CAST(location_id AS VARCHAR) AS location_id,
    CAST(NULL AS DOUBLE) AS units,
    CAST(NULL AS DOUBLE) AS revenue,
    CAST(NULL AS DOUBLE) AS price,
    'end_date ' || CAST(CAST(end_date AS DATE) AS VARCHAR) || ' precedes start_date '
        || CAST(CAST(start_date AS DATE) AS VARCHAR) AS reason
FROM closures
WHERE CAST(end_date AS DATE) < CAST(start_date AS DATE)
UNION ALL
SELECT
    table_name, date, item_id, location_id, value, CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE),
    CASE
        WHEN value IS NULL AND label IS NULL THEN 'covariate `' || name || '` has neither a value nor a label'
        WHEN value IS NOT NULL AND (isnan(value) OR abs(value) >= 1e300)
            THEN 'covariate `' || name || '`: value is not a finite number'
        WHEN item_id IS NOT NULL AND known_item IS NULL
            THEN 'covariate `' || name || '`: item ' || item_id || ' has no sales'
        ELSE 'covariate `' || name || '`: location ' || location_id || ' has no sales'
    END
FROM keyed
WHERE (value IS NULL AND label IS NULL)
   OR (value IS NOT NULL AND (isnan(value) OR abs(value) >= 1e300))
   OR (item_id IS NOT NULL AND known_item IS NULL)
   OR (location_id IS NOT NULL AND known_location IS NULL)
