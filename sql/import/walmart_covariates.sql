-- walmart_covariates: the weather and economy columns of features.csv as location-level
-- `known_covariates`.
--
-- inputs:  walmart_features (features.csv: Store, Date (the Friday that ends the week),
--          Temperature (°F), Fuel_Price ($/gallon), CPI, Unemployment (%), 'NA' when missing)
-- output:  date         Date (the week labelled as the sales are)
--          item_id      NULL (every department of the store)
--          location_id  'store_<Store>'
--          name         temperature, fuel_price, cpi, unemployment
--          value        the number
--          label, known_at  NULL: the file gives one value per week, known from the start
--          reason       why the row cannot be kept (NULL when it can): an unreadable Date or value
-- mapping: a cell that is 'NA' or empty is no row (CPI and Unemployment are missing for most of
--          2013). The values are the ones that happened, also for the weeks after the sales: a
--          backtest reads them as if known in advance, which suits the economy (slow, published)
--          better than the weather (a forecast would be noisier).
WITH cells AS (
    SELECT "Store" AS store, "Date" AS d, 'temperature' AS name, CAST("Temperature" AS VARCHAR) AS raw FROM walmart_features
    UNION ALL
    SELECT "Store", "Date", 'fuel_price', CAST("Fuel_Price" AS VARCHAR) FROM walmart_features
    UNION ALL
    SELECT "Store", "Date", 'cpi', CAST("CPI" AS VARCHAR) FROM walmart_features
    UNION ALL
    SELECT "Store", "Date", 'unemployment', CAST("Unemployment" AS VARCHAR) FROM walmart_features
)
SELECT
    TRY_CAST(d AS DATE) AS date,
    CAST(NULL AS VARCHAR) AS item_id,
    'store_' || CAST(store AS VARCHAR) AS location_id,
    name,
    TRY_CAST(trim(raw) AS DOUBLE) AS value,
    CAST(NULL AS VARCHAR) AS label,
    CAST(NULL AS DATE) AS known_at,
    CASE
        WHEN TRY_CAST(d AS DATE) IS NULL THEN 'Date: cannot read ''' || CAST(d AS VARCHAR) || ''' as a date'
        WHEN TRY_CAST(trim(raw) AS DOUBLE) IS NULL THEN name || ': cannot read ''' || raw || ''' as a number'
    END AS reason
FROM cells
WHERE raw IS NOT NULL AND trim(raw) <> '' AND upper(trim(raw)) <> 'NA'
