-- walmart_locations: Walmart stores as the raw `locations` table.
--
-- inputs:  walmart_stores (stores.csv: Store, Type, Size)
-- output:  location_id ('store_<Store>'), region (NULL), format ('type_<Type>')
SELECT
    'store_' || CAST("Store" AS VARCHAR) AS location_id,
    CAST(NULL AS VARCHAR) AS region,
    'type_' || CAST("Type" AS VARCHAR) AS format
FROM walmart_stores
