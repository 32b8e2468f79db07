-- history_daily: past-only demand statistics per item × location × period (daily grain).
--
-- role:       past (every value is computed from periods strictly before the row's period)
-- grain:      item_id × location_id × date, from each series' first period to the first period
--             after the cutoff; that last row holds the statistics "as of the cutoff"
-- inputs:     target (the feature table above)
-- parameters: $1 cutoff 'YYYY-MM-DD', $2 period length in days,
--             $4 anchor: a day (days since 1970-01-01) on which periods start
-- output:     item_id, location_id, date,
--             lag_1, lag_7, lag_14, lag_28, lag_364  units that many periods before
--             mean_7, std_7, min_7, max_7, mean_28, std_28, min_28, max_28
--                         over the previous 7 and 28 periods (partial windows at a series' start;
--                         std is NULL below 2 values and exactly 0 over a constant window)
--             ewm         exponentially weighted mean of all previous periods, alpha 0.1
--             zero_share_28  share of the previous 28 periods without sales (intermittency)
--             days_since_sale  days from the last period with sales to this period (NULL: none yet)
--             stock_out_share_28  share of the previous 28 periods with a stock-out
--
-- LAG offsets must be literals, so the daily and weekly variants are two files that differ
-- only in them. DataFusion's sliding VAR_SAMP can leave a tiny residue (or NaN) over a constant
-- window, hence the MIN = MAX guard and GREATEST(…, 0).
WITH params AS (
    SELECT
        CAST(CAST(CAST($1 AS DATE) AS INT) AS BIGINT) AS cutoff_day,
        CAST($2 AS BIGINT) AS period
),
base AS (
    SELECT item_id, location_id, CAST(CAST(date AS INT) AS BIGINT) AS day, units, stock_out
    FROM target
    UNION ALL
    SELECT t.item_id, t.location_id, MAX(CAST(CAST(t.date AS INT) AS BIGINT)) + MIN(p.period) AS day,
           CAST(NULL AS DOUBLE) AS units, CAST(NULL AS BOOLEAN) AS stock_out
    FROM params p CROSS JOIN target t
    GROUP BY t.item_id, t.location_id
),
weighted AS (
    SELECT
        b.*,
        CASE WHEN b.units > 0 THEN b.day END AS sale_day,
        CASE WHEN b.units = 0 THEN 1.0 WHEN b.units IS NOT NULL THEN 0.0 END AS is_zero,
        CASE WHEN b.stock_out THEN 1.0 WHEN b.stock_out IS NOT NULL THEN 0.0 END AS is_stock_out,
        -- Weights relative to the cutoff stay within f64 range however long the history.
        POWER(0.9, CAST(p.cutoff_day - b.day AS DOUBLE) / p.period) AS w
    FROM params p CROSS JOIN base b
)
SELECT
    CAST(item_id AS VARCHAR) AS item_id,
    CAST(location_id AS VARCHAR) AS location_id,
    CAST(CAST(day AS INT) AS DATE) AS date,
    LAG(units, 1) OVER (PARTITION BY item_id, location_id ORDER BY day) AS lag_1,
    LAG(units, 7) OVER (PARTITION BY item_id, location_id ORDER BY day) AS lag_7,
    LAG(units, 14) OVER (PARTITION BY item_id, location_id ORDER BY day) AS lag_14,
    LAG(units, 28) OVER (PARTITION BY item_id, location_id ORDER BY day) AS lag_28,
    LAG(units, 364) OVER (PARTITION BY item_id, location_id ORDER BY day) AS lag_364,
    AVG(units) OVER (PARTITION BY item_id, location_id ORDER BY day ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING) AS mean_7,
    CASE
        WHEN COUNT(units) OVER (PARTITION BY item_id, location_id ORDER BY day ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING) < 2 THEN NULL
        WHEN MIN(units) OVER (PARTITION BY item_id, location_id ORDER BY day ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING)
           = MAX(units) OVER (PARTITION BY item_id, location_id ORDER BY day ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING) THEN 0.0
        ELSE SQRT(GREATEST(VAR_SAMP(units) OVER (PARTITION BY item_id, location_id ORDER BY day ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING), 0.0))
    END AS std_7,
    MIN(units) OVER (PARTITION BY item_id, location_id ORDER BY day ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING) AS min_7,
    MAX(units) OVER (PARTITION BY item_id, location_id ORDER BY day ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING) AS max_7,
    AVG(units) OVER (PARTITION BY item_id, location_id ORDER BY day ROWS BETWEEN 28 PRECEDING AND 1 PRECEDING) AS mean_28,
    CASE
        WHEN COUNT(units) OVER (PARTITION BY item_id, location_id ORDER BY day ROWS BETWEEN 28 PRECEDING AND 1 PRECEDING) < 2 THEN NULL
        WHEN MIN(units) OVER (PARTITION BY item_id, location_id ORDER BY day ROWS BETWEEN 28 PRECEDING AND 1 PRECEDING)
           = MAX(units) OVER (PARTITION BY item_id, location_id ORDER BY day ROWS BETWEEN 28 PRECEDING AND 1 PRECEDING) THEN 0.0
        ELSE SQRT(GREATEST(VAR_SAMP(units) OVER (PARTITION BY item_id, location_id ORDER BY day ROWS BETWEEN 28 PRECEDING AND 1 PRECEDING), 0.0))
    END AS std_28,
    MIN(units) OVER (PARTITION BY item_id, location_id ORDER BY day ROWS BETWEEN 28 PRECEDING AND 1 PRECEDING) AS min_28,
    MAX(units) OVER (PARTITION BY item_id, location_id ORDER BY day ROWS BETWEEN 28 PRECEDING AND 1 PRECEDING) AS max_28,
    SUM(units * w) OVER (PARTITION BY item_id, location_id ORDER BY day ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
      / SUM(w) OVER (PARTITION BY item_id, location_id ORDER BY day ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS ewm,
    AVG(is_zero) OVER (PARTITION BY item_id, location_id ORDER BY day ROWS BETWEEN 28 PRECEDING AND 1 PRECEDING) AS zero_share_28,
    CAST(day - MAX(sale_day) OVER (PARTITION BY item_id, location_id ORDER BY day ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS INT) AS days_since_sale,
    AVG(is_stock_out) OVER (PARTITION BY item_id, location_id ORDER BY day ROWS BETWEEN 28 PRECEDING AND 1 PRECEDING) AS stock_out_share_28
FROM weighted
