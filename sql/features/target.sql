-- target: demand per item × location × period, zero-filled, with the stock-out flag.
--
-- role:       target (past-only: reads nothing after the cutoff)
-- grain:      item_id × location_id × date (the period's first day: the day, or the Monday of the week)
-- inputs:     sales (required), inventory (optional: empty when absent)
-- parameters: $1 cutoff 'YYYY-MM-DD' (last day read; weekly: the Sunday closing the last week)
--             $2 period length in days (1 daily, 7 weekly)
--             $4 anchor: a day (days since 1970-01-01) on which periods start
-- output:     item_id, location_id, date,
--             units      net units sold in the period; 0 on periods without sales, from each
--                        series' first sale to the cutoff
--             revenue    net revenue in the period
--             stock_out  true when on-hand stock was 0 at the end of any day of the period: a zero
--                        (or low) value there is censored demand, not zero demand
-- order:      item_id, location_id, date
--
-- Days are integers (days since 1970-01-01); `day - mod(day - anchor, period)` is the first day
-- of a day's period, daily or weekly (anchor 4, 1970-01-05, a Monday, for weeks that end on Sunday).
WITH params AS (
    SELECT
        CAST(CAST(CAST($1 AS DATE) AS INT) AS BIGINT) AS cutoff_day,
        CAST($2 AS BIGINT) AS period,
        CAST($4 AS BIGINT) AS anchor
),
bucketed AS (
    SELECT
        s.item_id,
        s.location_id,
        s.day - (((s.day - p.anchor) % p.period) + p.period) % p.period AS pday,
        s.units,
        s.revenue
    FROM params p CROSS JOIN (
        SELECT
            item_id,
            location_id,
            CAST(CAST(CAST(date AS DATE) AS INT) AS BIGINT) AS day,
            CAST(units AS DOUBLE) AS units,
            CAST(revenue AS DOUBLE) AS revenue
        FROM sales
    ) s
    WHERE s.day <= p.cutoff_day
),
per_period AS (
    SELECT item_id, location_id, pday, SUM(units) AS units, SUM(revenue) AS revenue
    FROM bucketed
    GROUP BY item_id, location_id, pday
),
grid AS (
    SELECT s.item_id, s.location_id,
           unnest(range(s.first_pday,
                        p.cutoff_day - (((p.cutoff_day - p.anchor) % p.period) + p.period) % p.period + 1,
                        p.period)) AS pday
    FROM params p CROSS JOIN (
        SELECT item_id, location_id, MIN(pday) AS first_pday
        FROM per_period
        GROUP BY item_id, location_id
    ) s
),
stock AS (
    SELECT
        i.item_id,
        i.location_id,
        i.day - (((i.day - p.anchor) % p.period) + p.period) % p.period AS pday,
        MAX(CASE WHEN i.on_hand <= 0 THEN 1 ELSE 0 END) AS stock_out
    FROM params p CROSS JOIN (
        SELECT item_id, location_id, CAST(CAST(CAST(date AS DATE) AS INT) AS BIGINT) AS day, on_hand
        FROM inventory
    ) i
    WHERE i.day <= p.cutoff_day
    GROUP BY 1, 2, 3
)
SELECT
    CAST(g.item_id AS VARCHAR) AS item_id,
    CAST(g.location_id AS VARCHAR) AS location_id,
    CAST(CAST(g.pday AS INT) AS DATE) AS date,
    COALESCE(pp.units, 0.0) AS units,
    COALESCE(pp.revenue, 0.0) AS revenue,
    COALESCE(st.stock_out, 0) = 1 AS stock_out
FROM grid g
LEFT JOIN per_period pp
  ON pp.item_id = g.item_id AND pp.location_id = g.location_id AND pp.pday = g.pday
LEFT JOIN stock st
  ON st.item_id = g.item_id AND st.location_id = g.location_id AND st.pday = g.pday
ORDER BY item_id, location_id, date
