-- calendar_features: calendar and event features per period, over the history and the forecast horizon.
--
-- role:       known (known in advance: covers the horizon after the cutoff)
-- grain:      date (the period's first day)
-- inputs:     sales (for the first period), calendar rows without a location_id or region
--             (optional: no events when absent)
-- parameters: $1 cutoff 'YYYY-MM-DD', $2 period length in days, $3 horizon in periods,
--             $4 anchor: a day (days since 1970-01-01) on which periods start
-- output:     date, day_of_week (1 = Monday … 7 = Sunday), day_of_month, week_of_year (ISO),
--             month, quarter, year, day_of_year, is_weekend (the period starts on Sat/Sun),
--             is_event (an event day falls in the period), event (its name; the first
--             alphabetically when several), event_kind (holiday, festival, season),
--             days_to_next_event, days_since_last_event (from the period's first day, counting an
--             event on that day as 0; NULL beyond a year), is_future (after the cutoff)
WITH params AS (
    SELECT
        CAST(CAST(CAST($1 AS DATE) AS INT) AS BIGINT) AS cutoff_day,
        CAST($2 AS BIGINT) AS period,
        CAST($3 AS BIGINT) AS horizon,
        CAST($4 AS BIGINT) AS anchor
),
bounds AS (
    SELECT
        MIN(CAST(CAST(CAST(s.date AS DATE) AS INT) AS BIGINT)) AS first_day
    FROM sales s
),
span AS (
    SELECT
        b.first_day - (((b.first_day - p.anchor) % p.period) + p.period) % p.period AS first_pday,
        p.cutoff_day - (((p.cutoff_day - p.anchor) % p.period) + p.period) % p.period
            + p.period * (p.horizon + 1) AS end_day,
        p.period,
        p.anchor,
        p.cutoff_day
    FROM params p CROSS JOIN bounds b
),
events AS (
    SELECT
        CAST(CAST(CAST(date AS DATE) AS INT) AS BIGINT) AS day,
        MIN(event) AS event,
        MIN(kind) AS kind
    FROM calendar
    -- Events of one location or region are the `local_calendar` table's.
    WHERE location_id IS NULL AND region IS NULL
    GROUP BY 1
),
-- A daily grid a year wider on each side, so the nearest event is found across the edges.
days AS (
    SELECT unnest(range(first_pday - 366, end_day + 366)) AS day FROM span
),
nearest AS (
    SELECT
        d.day,
        e.event,
        e.kind,
        MIN(e.day) OVER (ORDER BY d.day ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING) AS next_event_day,
        MAX(e.day) OVER (ORDER BY d.day ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS last_event_day
    FROM days d
    LEFT JOIN events e ON e.day = d.day
),
periods AS (
    SELECT
        n.day - (((n.day - s.anchor) % s.period) + s.period) % s.period AS pday,
        n.day,
        n.event,
        n.kind,
        n.next_event_day,
        n.last_event_day,
        s.cutoff_day
    FROM span s CROSS JOIN nearest n
    WHERE n.day >= s.first_pday AND n.day < s.end_day
),
per_period AS (
    SELECT
        pday,
        COUNT(event) > 0 AS is_event,
        MIN(event) AS event,
        MIN(kind) AS event_kind,
        MAX(CASE WHEN day = pday THEN next_event_day - day END) AS days_to_next_event,
        MAX(CASE WHEN day = pday THEN day - last_event_day END) AS days_since_last_event,
        MIN(cutoff_day) AS cutoff_day
    FROM periods
    GROUP BY pday
)
SELECT
    CAST(CAST(pday AS INT) AS DATE) AS date,
    CAST(date_part('isodow', CAST(CAST(pday AS INT) AS DATE)) AS INT) AS day_of_week,
    CAST(date_part('day', CAST(CAST(pday AS INT) AS DATE)) AS INT) AS day_of_month,
    CAST(date_part('week', CAST(CAST(pday AS INT) AS DATE)) AS INT) AS week_of_year,
    CAST(date_part('month', CAST(CAST(pday AS INT) AS DATE)) AS INT) AS month,
    CAST(date_part('quarter', CAST(CAST(pday AS INT) AS DATE)) AS INT) AS quarter,
    CAST(date_part('year', CAST(CAST(pday AS INT) AS DATE)) AS INT) AS year,
    CAST(date_part('doy', CAST(CAST(pday AS INT) AS DATE)) AS INT) AS day_of_year,
    CAST(date_part('isodow', CAST(CAST(pday AS INT) AS DATE)) AS INT) >= 6 AS is_weekend,
    is_event,
    CAST(event AS VARCHAR) AS event,
    CAST(event_kind AS VARCHAR) AS event_kind,
    CASE WHEN days_to_next_event <= 366 THEN CAST(days_to_next_event AS INT) END AS days_to_next_event,
    CASE WHEN days_since_last_event <= 366 THEN CAST(days_since_last_event AS INT) END AS days_since_last_event,
    pday > cutoff_day AS is_future
FROM per_period
ORDER BY date
