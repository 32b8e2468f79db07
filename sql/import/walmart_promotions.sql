-- walmart_promotions: the store markdowns of features.csv as `promotions`, one per store ×
-- department × week with a markdown.
--
-- inputs:  walmart_features (features.csv: Store, Date (the Friday that ends the week),
--          MarkDown1..MarkDown5 in dollars, 'NA' when missing), walmart_train (the series the
--          sales preset keeps, and each store's sales)
-- output:  item_id      'dept_<Dept>': every department of the store that walmart_sales.sql keeps
--                       (a markdown is store-wide; the data does not say which departments it hit)
--          location_id  'store_<Store>'
--          start_date   Date − 6 days (the Saturday opening the week ending on Date)
--          end_date     Date
--          kind         'markdown', or 'markdown_deep' when the week's markdown dollars are at or
--                       above the median of the store's weeks with a markdown
--          discount     the week's markdown dollars over the store's average weekly sales in
--                       train.csv: the depth of the markdown, a fraction (at most 0.95)
--          reason       why the row cannot be kept (NULL when it can): an unreadable Date or
--                       MarkDown value; the import quarantines such rows, once per features row
-- mapping: MarkDown1..MarkDown5 are summed, 'NA' and empty counting as 0; a week whose sum is not
--          positive has no promotion. The data has markdowns only from November 2011 on (every
--          week before is 'NA'), so earlier weeks carry no promotion. Weeks after the sales (the
--          test period, to July 2013) are kept: planned markdowns are known in advance.
--          Temperature, Fuel_Price, CPI and Unemployment are walmart_covariates.sql's.
WITH dates AS (
    SELECT COUNT(DISTINCT "Date") AS weeks FROM walmart_train
),
kept AS (
    -- The series walmart_sales.sql keeps: a sale in every week of the data.
    SELECT CAST("Store" AS VARCHAR) AS store, CAST("Dept" AS VARCHAR) AS dept
    FROM walmart_train
    GROUP BY "Store", "Dept"
    HAVING COUNT(DISTINCT "Date") = (SELECT weeks FROM dates)
),
store_sales AS (
    SELECT CAST("Store" AS VARCHAR) AS store,
           SUM(CAST("Weekly_Sales" AS DOUBLE)) / (SELECT weeks FROM dates) AS weekly
    FROM walmart_train
    GROUP BY "Store"
),
raw AS (
    SELECT
        CAST("Store" AS VARCHAR) AS store,
        CAST("Date" AS VARCHAR) AS date_text,
        TRY_CAST(CAST("Date" AS VARCHAR) AS DATE) AS week_end,
        CAST("MarkDown1" AS VARCHAR) AS m1,
        CAST("MarkDown2" AS VARCHAR) AS m2,
        CAST("MarkDown3" AS VARCHAR) AS m3,
        CAST("MarkDown4" AS VARCHAR) AS m4,
        CAST("MarkDown5" AS VARCHAR) AS m5
    FROM walmart_features
),
weeks AS (
    SELECT
        store,
        week_end,
        COALESCE(TRY_CAST(m1 AS DOUBLE), 0.0) + COALESCE(TRY_CAST(m2 AS DOUBLE), 0.0)
            + COALESCE(TRY_CAST(m3 AS DOUBLE), 0.0) + COALESCE(TRY_CAST(m4 AS DOUBLE), 0.0)
            + COALESCE(TRY_CAST(m5 AS DOUBLE), 0.0) AS markdown,
        COALESCE(
            CASE WHEN week_end IS NULL THEN 'Date: cannot read ''' || COALESCE(date_text, '') || ''' as date' END,
            CASE WHEN trim(m1) NOT IN ('', 'NA') AND TRY_CAST(m1 AS DOUBLE) IS NULL
                 THEN 'MarkDown1: cannot read ''' || m1 || ''' as double' END,
            CASE WHEN trim(m2) NOT IN ('', 'NA') AND TRY_CAST(m2 AS DOUBLE) IS NULL
                 THEN 'MarkDown2: cannot read ''' || m2 || ''' as double' END,
            CASE WHEN trim(m3) NOT IN ('', 'NA') AND TRY_CAST(m3 AS DOUBLE) IS NULL
                 THEN 'MarkDown3: cannot read ''' || m3 || ''' as double' END,
            CASE WHEN trim(m4) NOT IN ('', 'NA') AND TRY_CAST(m4 AS DOUBLE) IS NULL
                 THEN 'MarkDown4: cannot read ''' || m4 || ''' as double' END,
            CASE WHEN trim(m5) NOT IN ('', 'NA') AND TRY_CAST(m5 AS DOUBLE) IS NULL
                 THEN 'MarkDown5: cannot read ''' || m5 || ''' as double' END
        ) AS reason
    FROM raw
),
medians AS (
    SELECT store, median(markdown) AS median_markdown
    FROM weeks
    WHERE reason IS NULL AND markdown > 0
    GROUP BY store
)
SELECT
    'dept_' || k.dept AS item_id,
    'store_' || w.store AS location_id,
    CAST(w.week_end - INTERVAL '6 days' AS DATE) AS start_date,
    w.week_end AS end_date,
    CASE WHEN w.reason IS NULL AND w.markdown >= m.median_markdown THEN 'markdown_deep' ELSE 'markdown' END AS kind,
    CASE
        WHEN s.weekly IS NULL OR s.weekly <= 0 THEN CAST(NULL AS DOUBLE)
        WHEN w.markdown / s.weekly > 0.95 THEN 0.95
        ELSE w.markdown / s.weekly
    END AS discount,
    w.reason
FROM weeks w
LEFT JOIN kept k ON k.store = w.store AND w.reason IS NULL
LEFT JOIN medians m ON m.store = w.store
LEFT JOIN store_sales s ON s.store = w.store
WHERE w.reason IS NOT NULL OR (w.markdown > 0 AND k.dept IS NOT NULL)
