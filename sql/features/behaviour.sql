-- behaviour: consumer behaviour per item × period, lagged one period.
--
-- role:       past (traffic is observed: each row reads periods strictly before its own)
-- grain:      item_id × date, from the item's first period with sales to the first period after
--             the cutoff (that last row holds the values "as of the cutoff")
-- inputs:     target (units per item), traffic (optional: NULL values when absent)
-- parameters: $1 cutoff 'YYYY-MM-DD', $2 period length in days,
--             $4 anchor: a day (days since 1970-01-01) on which periods start
-- output:     item_id, date,
--             views_lag_1, add_to_cart_lag_1  page views and add-to-cart events in the previous period
--             conversion_lag_1   units sold (all locations) / page views, previous period
--             cart_rate_lag_1    add-to-cart / page views, previous period
--             views_mean_7       mean page views over the previous 7 periods
WITH params AS (
    SELECT
        CAST(CAST(CAST($1 AS DATE) AS INT) AS BIGINT) AS cutoff_day,
        CAST($2 AS BIGINT) AS period,
        CAST($4 AS BIGINT) AS anchor
),
item_units AS (
    SELECT item_id, CAST(CAST(date AS INT) AS BIGINT) AS pday, SUM(units) AS units
    FROM target
    GROUP BY 1, 2
),
grid AS (
    SELECT item_id, pday, units FROM item_units
    UNION ALL
    SELECT u.item_id, MAX(u.pday) + MIN(p.period) AS pday, CAST(NULL AS DOUBLE) AS units
    FROM params p CROSS JOIN item_units u
    GROUP BY u.item_id
),
traffic_periods AS (
    SELECT
        t.item_id,
        t.day - (((t.day - p.anchor) % p.period) + p.period) % p.period AS pday,
        SUM(t.views) AS views,
        SUM(t.add_to_cart) AS add_to_cart
    FROM params p CROSS JOIN (
        SELECT item_id, CAST(CAST(CAST(date AS DATE) AS INT) AS BIGINT) AS day,
               CAST(views AS DOUBLE) AS views, CAST(add_to_cart AS DOUBLE) AS add_to_cart
        FROM traffic
    ) t
    WHERE t.day <= p.cutoff_day
    GROUP BY 1, 2
),
joined AS (
    SELECT g.item_id, g.pday, g.units, tp.views, tp.add_to_cart
    FROM grid g
    LEFT JOIN traffic_periods tp ON tp.item_id = g.item_id AND tp.pday = g.pday
)
SELECT
    CAST(item_id AS VARCHAR) AS item_id,
    CAST(CAST(pday AS INT) AS DATE) AS date,
    LAG(views, 1) OVER (PARTITION BY item_id ORDER BY pday) AS views_lag_1,
    LAG(add_to_cart, 1) OVER (PARTITION BY item_id ORDER BY pday) AS add_to_cart_lag_1,
    LAG(CASE WHEN views > 0 THEN units / views END, 1) OVER (PARTITION BY item_id ORDER BY pday) AS conversion_lag_1,
    LAG(CASE WHEN views > 0 THEN add_to_cart / views END, 1) OVER (PARTITION BY item_id ORDER BY pday) AS cart_rate_lag_1,
    AVG(views) OVER (PARTITION BY item_id ORDER BY pday ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING) AS views_mean_7
FROM joined
