-- local_calendar: events that belong to one location or one region, per location and period.
--
-- role:       known (events are known in advance: they cover the horizon after the cutoff)
-- grain:      location_id × date (the period's first day); only periods with a local event appear
-- inputs:     sales (for the first period), calendar rows with a location_id or a region
--             (rows with neither are the shared calendar of `calendar_features`), locations (the
--             region of each location)
-- parameters: $1 cutoff 'YYYY-MM-DD', $2 period length in days, $3 horizon in periods,
--             $4 anchor: a day (days since 1970-01-01) on which periods start
-- output:     location_id, date,
--             local_event    true (a local event day falls in the period)
--             local_holiday  a local event of kind `holiday` falls in the period
--             event          its name (the first alphabetically when several)
--             event_kind     its kind (the first alphabetically)
-- order:      location_id, date
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
        p.anchor
    FROM params p CROSS JOIN (
        SELECT MIN(CAST(CAST(CAST(date AS DATE) AS INT) AS BIGINT)) AS first_day FROM sales
    ) b
),
local_events AS (
    SELECT
        CAST(location_id AS VARCHAR) AS location_id,
        CAST(CAST(CAST(date AS DATE) AS INT) AS BIGINT) AS day,
        CAST(event AS VARCHAR) AS event,
        CAST(kind AS VARCHAR) AS kind
    FROM calendar
    WHERE location_id IS NOT NULL
    UNION ALL
    SELECT
        CAST(l.location_id AS VARCHAR) AS location_id,
        CAST(CAST(CAST(c.date AS DATE) AS INT) AS BIGINT) AS day,
        CAST(c.event AS VARCHAR) AS event,
        CAST(c.kind AS VARCHAR) AS kind
    FROM calendar c
    JOIN locations l ON CAST(l.region AS VARCHAR) = CAST(c.region AS VARCHAR)
    WHERE c.location_id IS NULL AND c.region IS NOT NULL
)
SELECT
    e.location_id,
    CAST(CAST(e.day - (((e.day - s.anchor) % s.period) + s.period) % s.period AS INT) AS DATE) AS date,
    true AS local_event,
    MAX(CASE WHEN e.kind = 'holiday' THEN 1 ELSE 0 END) = 1 AS local_holiday,
    MIN(e.event) AS event,
    MIN(e.kind) AS event_kind
FROM span s CROSS JOIN local_events e
WHERE e.day >= s.first_pday AND e.day < s.end_day
GROUP BY e.location_id, e.day - (((e.day - s.anchor) % s.period) + s.period) % s.period
ORDER BY location_id, date
