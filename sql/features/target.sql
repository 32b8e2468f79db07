-- target: demand per item × location × period, zero-filled, with calendar columns.
--
-- grain:      item_id × location_id × date (the period's first day: the day, or the Monday of the week)
-- inputs:     sales (required), calendar (optional: empty when absent)
-- parameters: $1 cutoff, 'YYYY-MM-DD': the last day included (for weekly, the Sunday closing the last week)
--             $2 period length in days: 1 (daily) or 7 (weekly)
-- output:     item_id, location_id, date, units (0 on periods without sales, from each series'
--             first sale to the cutoff), revenue, day_of_week (1 = Monday … 7 = Sunday), day_of_month,
--             week_of_year (ISO), month, year, day_of_year, is_event (an event day falls in the period),
--             event (the event's name, or NULL)
-- order:      item_id, location_id, date
--
-- Days are handled as integers (days since 1970-01-01); 1970-01-05 (day 4) is a Monday, so
-- `day - mod(day - 4, period)` is the first day of a day's period for both daily and weekly.
WITH params AS (
    SELECT
        CAST(CAST(CAST($1 AS DATE) AS INT) AS BIGINT) AS cutoff_day,
        CAST($2 AS BIGINT) AS period
),
sales_days AS (
    SELECT
        s.item_id,
        s.location_id,
        CAST(CAST(CAST(s.date AS DATE) AS INT) AS BIGINT) AS day,
        CAST(s.units AS DOUBLE) AS units,
        CAST(s.revenue AS DOUBLE) AS revenue
    FROM sales s
),
bucketed AS (
    SELECT
        d.item_id,
        d.location_id,
        d.day - (((d.day - 4) % p.period) + p.period) % p.period AS pday,
        d.units,
        d.revenue
    FROM sales_days d CROSS JOIN params p
    WHERE d.day <= p.cutoff_day
),
per_period AS (
    SELECT item_id, location_id, pday, SUM(units) AS units, SUM(revenue) AS revenue
    FROM bucketed
    GROUP BY item_id, location_id, pday
),
spans AS (
    SELECT item_id, location_id, MIN(pday) AS first_pday
    FROM per_period
    GROUP BY item_id, location_id
),
grid AS (
    SELECT s.item_id, s.location_id,
           unnest(range(s.first_pday,
                        p.cutoff_day - (((p.cutoff_day - 4) % p.period) + p.period) % p.period + 1,
                        p.period)) AS pday
    FROM spans s CROSS JOIN params p
),
events AS (
    SELECT
        c.pday,
        MIN(c.event) AS event
    FROM (
        SELECT
            CAST(CAST(CAST(cal.date AS DATE) AS INT) AS BIGINT)
              - (((CAST(CAST(CAST(cal.date AS DATE) AS INT) AS BIGINT) - 4) % p.period) + p.period) % p.period AS pday,
            cal.event
        FROM calendar cal CROSS JOIN params p
    ) c
    GROUP BY c.pday
),
filled AS (
    SELECT
        g.item_id,
        g.location_id,
        CAST(CAST(g.pday AS INT) AS DATE) AS date,
        COALESCE(pp.units, 0.0) AS units,
        COALESCE(pp.revenue, 0.0) AS revenue,
        e.event
    FROM grid g
    LEFT JOIN per_period pp
      ON pp.item_id = g.item_id AND pp.location_id = g.location_id AND pp.pday = g.pday
    LEFT JOIN events e ON e.pday = g.pday
)
SELECT
    CAST(item_id AS VARCHAR) AS item_id,
    CAST(location_id AS VARCHAR) AS location_id,
    date,
    units,
    revenue,
    CAST(date_part('isodow', date) AS INT) AS day_of_week,
    CAST(date_part('day', date) AS INT) AS day_of_month,
    CAST(date_part('week', date) AS INT) AS week_of_year,
    CAST(date_part('month', date) AS INT) AS month,
    CAST(date_part('year', date) AS INT) AS year,
    CAST(date_part('doy', date) AS INT) AS day_of_year,
    event IS NOT NULL AS is_event,
    CAST(event AS VARCHAR) AS event
FROM filled
ORDER BY item_id, location_id, date
