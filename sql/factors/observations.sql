-- observations: one row per item × location × period of the history, with what the factor
-- regression reads.
--
-- role:       analysis (reads the feature tables of the cutoff: target, price_promo, competitor,
--             calendar_features, attributes; and factor_series, the series chosen to be read)
-- grain:      item_id × location_id × date, up to the cutoff
-- parameters: $1 cutoff 'YYYY-MM-DD'
-- output:     item_id, location_id, category (the item's, or 'all' when unknown), date,
--             day             days since 1970-01-01
--             units           demand (censored on stock-out periods, which the fit leaves out)
--             stock_out       on-hand stock was 0 at the end of some day of the period
--             opening_stock   on-hand stock at the end of the day before the period (NULL without
--                             inventory rows)
--             price           price paid (shelf price less the promotion discount); NULL without prices
--             shelf_price     regular price
--             promo_kind      the kind of promotion running (NULL: none)
--             post_promo      within 7 days after a promotion ended
--             competitor_min_price  the cheapest competitor's price (NULL without competitors)
--             day_of_week     1 = Monday … 7 = Sunday
--             day_of_year     1 … 366
--             event           the calendar event of the period (NULL: none)
-- order:      item_id, location_id, date
SELECT
    t.item_id,
    t.location_id,
    COALESCE(a.category, 'all') AS category,
    t.date,
    CAST(CAST(t.date AS INT) AS BIGINT) AS day,
    CAST(t.units AS DOUBLE) AS units,
    t.stock_out,
    CAST(inv.on_hand AS DOUBLE) AS opening_stock,
    CAST(pp.price AS DOUBLE) AS price,
    CAST(pp.shelf_price AS DOUBLE) AS shelf_price,
    pp.promo_kind,
    COALESCE(pp.post_promo, false) AS post_promo,
    CAST(c.competitor_min_price AS DOUBLE) AS competitor_min_price,
    CAST(cf.day_of_week AS BIGINT) AS day_of_week,
    CAST(cf.day_of_year AS BIGINT) AS day_of_year,
    cf.event
FROM target t
JOIN factor_series fs
  ON fs.item_id = t.item_id AND fs.location_id = t.location_id
LEFT JOIN price_promo pp
  ON pp.item_id = t.item_id AND pp.location_id = t.location_id AND pp.date = t.date
LEFT JOIN competitor c
  ON c.item_id = t.item_id AND c.location_id = t.location_id AND c.date = t.date
LEFT JOIN calendar_features cf
  ON cf.date = t.date
LEFT JOIN attributes a
  ON a.item_id = t.item_id AND a.location_id = t.location_id
LEFT JOIN (
    SELECT i.item_id, i.location_id, CAST(CAST(CAST(i.date AS DATE) AS INT) AS BIGINT) + 1 AS day, MIN(i.on_hand) AS on_hand
    FROM inventory i
    JOIN factor_series s
      ON s.item_id = i.item_id AND s.location_id = i.location_id
    GROUP BY 1, 2, 3
) inv
  ON inv.item_id = t.item_id AND inv.location_id = t.location_id AND inv.day = CAST(CAST(t.date AS INT) AS BIGINT)
WHERE t.date <= CAST($1 AS DATE)
ORDER BY t.item_id, t.location_id, t.date
