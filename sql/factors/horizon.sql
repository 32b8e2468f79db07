-- horizon: the known and carried-forward covariates of one series over the forecast horizon, in
-- the columns of observations.sql, for `explain`.
--
-- role:       analysis (reads the feature views of the cutoff: price_promo, competitor,
--             calendar_features, attributes)
-- grain:      date, after the cutoff, for one item × location
-- parameters: $1 cutoff 'YYYY-MM-DD', $2 item_id, $3 location_id
-- output:     as observations.sql; units 0 and stock_out false (the future is not observed)
-- order:      date
SELECT
    pp.item_id,
    pp.location_id,
    COALESCE(a.category, 'all') AS category,
    pp.date,
    CAST(CAST(pp.date AS INT) AS BIGINT) AS day,
    CAST(0.0 AS DOUBLE) AS units,
    false AS stock_out,
    CAST(NULL AS DOUBLE) AS opening_stock,
    CAST(pp.price AS DOUBLE) AS price,
    CAST(pp.shelf_price AS DOUBLE) AS shelf_price,
    pp.promo_kind,
    COALESCE(pp.post_promo, false) AS post_promo,
    CAST(c.competitor_min_price AS DOUBLE) AS competitor_min_price,
    CAST(cf.day_of_week AS BIGINT) AS day_of_week,
    CAST(cf.day_of_year AS BIGINT) AS day_of_year,
    cf.event
FROM price_promo pp
LEFT JOIN competitor c
  ON c.item_id = pp.item_id AND c.location_id = pp.location_id AND c.date = pp.date
LEFT JOIN calendar_features cf
  ON cf.date = pp.date
LEFT JOIN attributes a
  ON a.item_id = pp.item_id AND a.location_id = pp.location_id
WHERE pp.date > CAST($1 AS DATE) AND pp.item_id = $2 AND pp.location_id = $3
ORDER BY pp.date
