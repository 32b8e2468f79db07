-- impossible_prices: prices that are zero, negative, not finite or absurdly large, in sales and prices.
--
-- kind:       rows (quarantined and left out)
-- inputs:     sales, prices
-- parameters: $1 run date, $2 cutoff (unused)
-- output:     table_name, date, item_id, location_id, units, revenue, price, reason
SELECT
    'sales' AS table_name,
    CAST(date AS DATE) AS date,
    CAST(item_id AS VARCHAR) AS item_id,
    CAST(location_id AS VARCHAR) AS location_id,
    CAST(units AS DOUBLE) AS units,
    CAST(revenue AS DOUBLE) AS revenue,
    CAST(price AS DOUBLE) AS price,
    'impossible price in sales: ' || CAST(CAST(price AS DOUBLE) AS VARCHAR) AS reason
FROM sales
WHERE price IS NOT NULL
  AND (CAST(price AS DOUBLE) <= 0 OR CAST(price AS DOUBLE) > 1e7 OR isnan(CAST(price AS DOUBLE)))
UNION ALL
SELECT
    'prices' AS table_name,
    CAST(date AS DATE) AS date,
    CAST(item_id AS VARCHAR) AS item_id,
    CAST(location_id AS VARCHAR) AS location_id,
    CAST(NULL AS DOUBLE) AS units,
    CAST(NULL AS DOUBLE) AS revenue,
    CAST(price AS DOUBLE) AS price,
    'impossible shelf price: ' || CAST(CAST(price AS DOUBLE) AS VARCHAR) AS reason
FROM prices
WHERE CAST(price AS DOUBLE) <= 0 OR CAST(price AS DOUBLE) > 1e7 OR isnan(CAST(price AS DOUBLE))
