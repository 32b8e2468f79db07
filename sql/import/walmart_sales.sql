-- walmart_sales: Walmart store × department weekly sales as the raw `sales` table.
--
-- inputs:  walmart_train (train.csv: Store, Dept, Date, Weekly_Sales, IsHoliday)
-- output:  date, item_id ('dept_<Dept>'), location_id ('store_<Store>'), units (Weekly_Sales, in
--          dollars: this data has no unit counts; negative weeks are returns), revenue (the same),
--          price (NULL)
-- filter:  only series with a sale in every week of the data (2,660 of 3,331), the usual protocol
WITH complete AS (
    SELECT "Store", "Dept"
    FROM walmart_train
    GROUP BY "Store", "Dept"
    HAVING COUNT(DISTINCT "Date") = (SELECT COUNT(DISTINCT "Date") FROM walmart_train)
)
SELECT
    CAST(t."Date" AS DATE) AS date,
    'dept_' || CAST(t."Dept" AS VARCHAR) AS item_id,
    'store_' || CAST(t."Store" AS VARCHAR) AS location_id,
    CAST(t."Weekly_Sales" AS DOUBLE) AS units,
    CAST(t."Weekly_Sales" AS DOUBLE) AS revenue,
    CAST(NULL AS DOUBLE) AS price
FROM walmart_train t
JOIN complete c ON c."Store" = t."Store" AND c."Dept" = t."Dept"
