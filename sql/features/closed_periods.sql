-- closed_periods: the periods in which a location (or an item at a location, or everything) is closed.
--
-- role:       known (closures are planned: they cover the horizon after the cutoff)
-- grain:      location_id × item_id × date (the period's first day); only periods with a closed
--             day appear. A NULL location_id means every location, a NULL item_id every item at the
--             location (the models resolve the keys per series: no row is expanded to every series).
-- inputs:     sales (for the first period), closures (optional: no rows when absent)
-- parameters: $1 cutoff 'YYYY-MM-DD', $2 period length in days, $3 horizon in periods,
--             $4 anchor: a day (days since 1970-01-01) on which periods start
-- output:     location_id, item_id, date,
--             closed_days   distinct closed days in the period (overlapping closures count once)
--             closed_share  closed_days over the period length (1: closed the whole period)
--             reason        a reason given for a closure of the period (the first alphabetically)
-- order:      location_id, item_id, date
--
-- Each closure is clipped to the span from the first sale to the end of the horizon, so an
-- open-ended closure (end_date 9999-12-31) expands to at most that span. A closure whose end
-- precedes its start is left out (the `bad_closures` check records it).
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
clipped AS (
    SELECT
        CAST(c.location_id AS VARCHAR) AS location_id,
        CAST(c.item_id AS VARCHAR) AS item_id,
        greatest(c.start_day, s.first_pday) AS from_day,
        least(c.end_day, s.end_day - 1) AS to_day,
        CAST(c.reason AS VARCHAR) AS reason,
        s.period,
        s.anchor
    FROM span s CROSS JOIN (
        SELECT
            location_id,
            item_id,
            CAST(CAST(CAST(start_date AS DATE) AS INT) AS BIGINT) AS start_day,
            CAST(CAST(CAST(end_date AS DATE) AS INT) AS BIGINT) AS end_day,
            reason
        FROM closures
    ) c
    WHERE c.end_day >= c.start_day
      AND c.end_day >= s.first_pday
      AND c.start_day < s.end_day
),
days AS (
    SELECT location_id, item_id, unnest(range(from_day, to_day + 1)) AS day, reason, period, anchor
    FROM clipped
),
per_day AS (
    SELECT location_id, item_id, day, MIN(reason) AS reason, MIN(period) AS period, MIN(anchor) AS anchor
    FROM days
    GROUP BY location_id, item_id, day
)
SELECT
    d.location_id,
    d.item_id,
    CAST(CAST(d.day - (((d.day - d.anchor) % d.period) + d.period) % d.period AS INT) AS DATE) AS date,
    COUNT(*) AS closed_days,
    CAST(COUNT(*) AS DOUBLE) / CAST(MIN(d.period) AS DOUBLE) AS closed_share,
    MIN(d.reason) AS reason
FROM per_day d
GROUP BY d.location_id, d.item_id, d.day - (((d.day - d.anchor) % d.period) + d.period) % d.period
ORDER BY location_id NULLS FIRST, item_id NULLS FIRST, date
