-- bad_promotions: promotions whose dates cannot be meant as written, each with its reason (the
-- features clip every promotion to the span from the first sale to the end of the horizon, so
-- none of these can stretch a feature table; they are recorded for the planner to correct).
--
-- kind:       findings (recorded)
-- inputs:     promotions
-- parameters: $1 run date 'YYYY-MM-DD', $2 cutoff (unused)
-- output:     table_name, date (the start), item_id, location_id, units, revenue, price (null), reason
--
-- Reasons: an end before the start; a start more than a year after the run date (no plan reaches
-- that far: a typing error such as 2207 for 2027); an end more than a year after the run date (read
-- as open-ended, e.g. 9999-12-31).
SELECT
    'promotions' AS table_name,
    CAST(start_date AS DATE) AS date,
    CAST(item_id AS VARCHAR) AS item_id,
    CAST(location_id AS VARCHAR) AS location_id,
    CAST(NULL AS DOUBLE) AS units,
    CAST(NULL AS DOUBLE) AS revenue,
    CAST(NULL AS DOUBLE) AS price,
    CASE
        WHEN CAST(end_date AS DATE) < CAST(start_date AS DATE)
            THEN 'end_date ' || CAST(CAST(end_date AS DATE) AS VARCHAR) || ' precedes start_date '
                || CAST(CAST(start_date AS DATE) AS VARCHAR)
        WHEN CAST(start_date AS DATE) > CAST($1 AS DATE) + INTERVAL '366 days'
            THEN 'start_date ' || CAST(CAST(start_date AS DATE) AS VARCHAR)
                || ' is more than a year after the run date ' || CAST(CAST($1 AS DATE) AS VARCHAR)
        ELSE 'end_date ' || CAST(CAST(end_date AS DATE) AS VARCHAR)
            || ' is more than a year after the run date: read as open-ended, clipped to the horizon'
    END AS reason
FROM promotions
WHERE CAST(end_date AS DATE) < CAST(start_date AS DATE)
   OR CAST(start_date AS DATE) > CAST($1 AS DATE) + INTERVAL '366 days'
   OR CAST(end_date AS DATE) > CAST($1 AS DATE) + INTERVAL '366 days'
