-- walmart_calendar: the holiday weeks of the Walmart data as `calendar` events.
--
-- inputs:  walmart_train (IsHoliday marks the Super Bowl, Labor Day, Thanksgiving and Christmas weeks)
-- output:  date, event (named by the month of the holiday week), kind ('holiday')
SELECT DISTINCT
    CAST("Date" AS DATE) AS date,
    CASE date_part('month', CAST("Date" AS DATE))
        WHEN 2 THEN 'super_bowl'
        WHEN 9 THEN 'labor_day'
        WHEN 11 THEN 'thanksgiving'
        ELSE 'christmas'
    END AS event,
    'holiday' AS kind
FROM walmart_train
WHERE CAST("IsHoliday" AS VARCHAR) IN ('TRUE', 'true', 'True', '1')
