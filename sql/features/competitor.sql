-- competitor: own price against the cheapest competitor, per item × location × period.
--
-- role:       past (competitor prices are observed, not planned: only rows on or before the cutoff
--             are read; after the cutoff the last observed price carries forward)
-- grain:      item_id × location_id × date, as price_promo
-- inputs:     price_promo (the feature table above), competitor_prices (optional)
-- parameters: $1 cutoff 'YYYY-MM-DD', $2 period length in days, $3 horizon in periods,
--             $4 anchor: a day (days since 1970-01-01) on which periods start
-- output:     item_id, location_id, date,
--             competitor_min_price  the cheapest competitor's latest price on or before each day
--                                   (and on or before the cutoff), averaged over the period
--             price_rel_competitor  own price paid / competitor_min_price (> 1: dearer than the cheapest)
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
observed AS (
    SELECT c.item_id, c.day, MIN(c.price) AS min_price
    FROM params p CROSS JOIN (
        SELECT item_id, CAST(CAST(CAST(date AS DATE) AS INT) AS BIGINT) AS day, CAST(price AS DOUBLE) AS price
        FROM competitor_prices
    ) c
    WHERE c.day <= p.cutoff_day
    GROUP BY c.item_id, c.day
),
ranges AS (
    SELECT item_id, day AS from_day, LEAD(day) OVER (PARTITION BY item_id ORDER BY day) AS to_day, min_price
    FROM observed
),
per_period AS (
    SELECT
        d.item_id,
        d.day - (((d.day - s.anchor) % s.period) + s.period) % s.period AS pday,
        AVG(d.min_price) AS competitor_min_price
    FROM span s CROSS JOIN (
        SELECT r.item_id, unnest(range(r.from_day, COALESCE(r.to_day, sp.end_day))) AS day, r.min_price
        FROM span sp CROSS JOIN ranges r
    ) d
    GROUP BY 1, 2
)
SELECT
    pp.item_id,
    pp.location_id,
    pp.date,
    c.competitor_min_price,
    pp.price / c.competitor_min_price AS price_rel_competitor
FROM price_promo pp
LEFT JOIN per_period c
  ON c.item_id = pp.item_id AND c.pday = CAST(CAST(pp.date AS INT) AS BIGINT)
