-- price_promo: prices and promotions per item × location × period, over the history and the horizon.
--
-- role:       known (planned prices and promotions are known in advance)
-- grain:      item_id × location_id × date, from each series' first period to the last period of
--             the horizon
-- inputs:     target (series and their first period), prices, promotions, items (category); the
--             optional tables are empty when absent, and then prices are NULL and there is no promotion
-- parameters: $1 cutoff 'YYYY-MM-DD', $2 period length in days, $3 horizon in periods,
--             $4 anchor: a day (days since 1970-01-01) on which periods start
-- output:     item_id, location_id, date,
--             shelf_price      regular price (the latest `prices` row on or before each day), averaged
--                              over the period's days
--             price            price paid: shelf price less the promotion discount, averaged
--             discount         deepest promotion discount in the period (0 without promotion)
--             promo            a promotion runs on some day of the period
--             promo_kind       its kind (price_cut, display, feature, …; the first alphabetically)
--             promo_days       days of the period under promotion
--             days_into_promo  on the period's first day: days since the promotion started, from 1
--             post_promo       some day of the period is within 7 days after a promotion ended
--                              and under no promotion
-- Promotions are clipped to the span from the first sale to the end of the horizon before they
-- expand to days, so an open-ended promotion (end_date 9999-12-31) costs that span at most.
--             price_rel_own_28 price / the shelf price's average over the previous 28 days
--             price_rel_category  price / the average price of the item's category in the period
WITH params AS (
    SELECT
        CAST(CAST(CAST($1 AS DATE) AS INT) AS BIGINT) AS cutoff_day,
        CAST($2 AS BIGINT) AS period,
        CAST($3 AS BIGINT) AS horizon,
        CAST($4 AS BIGINT) AS anchor
),
span AS (
    SELECT
        p.period,
        p.anchor,
        p.cutoff_day - (((p.cutoff_day - p.anchor) % p.period) + p.period) % p.period
            + p.period * (p.horizon + 1) AS end_day
    FROM params p
),
series AS (
    SELECT item_id, location_id, MIN(CAST(CAST(date AS INT) AS BIGINT)) AS first_day
    FROM target
    GROUP BY item_id, location_id
),
days AS (
    SELECT s.item_id, s.location_id, unnest(range(s.first_day, sp.end_day)) AS day
    FROM span sp CROSS JOIN series s
),
price_rows AS (
    SELECT
        item_id,
        location_id,
        day AS from_day,
        LEAD(day) OVER (PARTITION BY item_id, location_id ORDER BY day) AS to_day,
        price
    FROM (
        SELECT item_id, location_id, CAST(CAST(CAST(date AS DATE) AS INT) AS BIGINT) AS day,
               AVG(CAST(price AS DOUBLE)) AS price
        FROM prices
        GROUP BY 1, 2, 3
    ) pr
),
price_days AS (
    SELECT r.item_id, r.location_id, unnest(range(r.from_day, COALESCE(r.to_day, sp.end_day))) AS day, r.price
    FROM span sp CROSS JOIN price_rows r
),
promo_spans AS (
    SELECT
        item_id,
        location_id,
        CAST(CAST(CAST(start_date AS DATE) AS INT) AS BIGINT) AS start_day,
        CAST(CAST(CAST(end_date AS DATE) AS INT) AS BIGINT) AS end_day,
        kind,
        COALESCE(CAST(discount AS DOUBLE), 0.0) AS discount
    FROM promotions
),
-- Each promotion expands only over the days it can touch: from the first sale of any series to
-- the end of the horizon. An open-ended one (end_date 9999-12-31) or one from the year 1 expands to
-- at most that span; start_day and end_day stay the promotion's own (days_into_promo, post_promo).
-- A promotion ending before it starts expands to nothing.
promo_clipped AS (
    SELECT ps.item_id, ps.location_id, ps.discount, ps.kind, ps.start_day, ps.end_day,
           greatest(ps.start_day, b.first_day) AS from_day,
           least(ps.end_day, b.end_day - 1) AS to_day
    FROM (
        SELECT MIN(s.first_day) AS first_day, MIN(sp.end_day) AS end_day FROM span sp CROSS JOIN series s
    ) b CROSS JOIN promo_spans ps
    WHERE ps.end_day >= ps.start_day
),
promo_days AS (
    SELECT item_id, location_id, day, MAX(discount) AS discount, MIN(kind) AS kind,
           MIN(start_day) AS start_day, MAX(end_day) AS end_day
    FROM (
        SELECT item_id, location_id, unnest(range(from_day, to_day + 1)) AS day, discount, kind, start_day, end_day
        FROM promo_clipped
        WHERE to_day >= from_day
    ) x
    GROUP BY item_id, location_id, day
),
daily AS (
    SELECT
        d.item_id,
        d.location_id,
        d.day,
        pr.price AS shelf_price,
        COALESCE(pd.discount, 0.0) AS discount,
        pd.kind,
        pd.start_day,
        pd.end_day
    FROM days d
    LEFT JOIN price_days pr ON pr.item_id = d.item_id AND pr.location_id = d.location_id AND pr.day = d.day
    LEFT JOIN promo_days pd ON pd.item_id = d.item_id AND pd.location_id = d.location_id AND pd.day = d.day
),
windowed AS (
    SELECT
        daily.*,
        shelf_price * (1.0 - discount) AS paid,
        AVG(shelf_price) OVER (PARTITION BY item_id, location_id ORDER BY day ROWS BETWEEN 28 PRECEDING AND 1 PRECEDING) AS shelf_avg_28,
        MAX(end_day) OVER (PARTITION BY item_id, location_id ORDER BY day ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS last_promo_end
    FROM daily
),
per_period AS (
    SELECT
        w.item_id,
        w.location_id,
        w.day - (((w.day - s.anchor) % s.period) + s.period) % s.period AS pday,
        AVG(w.shelf_price) AS shelf_price,
        AVG(w.paid) AS price,
        MAX(w.discount) AS discount,
        MIN(w.kind) AS promo_kind,
        COUNT(w.kind) AS promo_days,
        MIN(CASE WHEN w.day = w.day - (((w.day - s.anchor) % s.period) + s.period) % s.period AND w.kind IS NOT NULL
                 THEN w.day - w.start_day + 1 END) AS days_into_promo,
        MAX(CASE WHEN w.kind IS NULL AND w.day - w.last_promo_end BETWEEN 1 AND 7 THEN 1 ELSE 0 END) AS post_promo,
        AVG(w.paid / w.shelf_avg_28) AS price_rel_own_28
    FROM span s CROSS JOIN windowed w
    GROUP BY 1, 2, 3
),
with_category AS (
    SELECT pp.*, COALESCE(i.category, pp.item_id) AS price_group
    FROM per_period pp
    LEFT JOIN (SELECT item_id, MIN(category) AS category FROM items GROUP BY item_id) i ON i.item_id = pp.item_id
),
-- The average price of the category (of the item, when it has none) per period, as a GROUP BY
-- joined back rather than a window over each (category, period): that window's frame is its whole
-- partition, so DataFusion holds all of its input in memory before it emits (outside the memory
-- budget: 13 GiB at 30,000 series). The small side of the join comes first, so a hash join builds
-- on it.
group_price AS (
    SELECT price_group, pday, AVG(price) AS group_price
    FROM with_category
    GROUP BY price_group, pday
)
SELECT
    CAST(w.item_id AS VARCHAR) AS item_id,
    CAST(w.location_id AS VARCHAR) AS location_id,
    CAST(CAST(w.pday AS INT) AS DATE) AS date,
    w.shelf_price,
    w.price,
    w.discount,
    w.promo_days > 0 AS promo,
    CAST(w.promo_kind AS VARCHAR) AS promo_kind,
    CAST(w.promo_days AS INT) AS promo_days,
    CAST(w.days_into_promo AS INT) AS days_into_promo,
    w.post_promo = 1 AS post_promo,
    w.price_rel_own_28,
    w.price / g.group_price AS price_rel_category
FROM group_price g
RIGHT JOIN with_category w
  ON g.price_group = w.price_group AND g.pday = w.pday
