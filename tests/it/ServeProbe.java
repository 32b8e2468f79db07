// A JDBC client (the PostgreSQL driver DBeaver and DataGrip use) for the `shelfcast serve` tests
// (serve.rs): metadata as a schema browser reads it, a prepared statement with a parameter, and a
// write. Usage: java -cp .:postgresql.jar ServeProbe PORT
import java.sql.*;

public class ServeProbe {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/shelfcast";
        try (Connection c = DriverManager.getConnection(url, "shelfcast", "")) {
            DatabaseMetaData md = c.getMetaData();
            int tables = 0, columns = 0;
            try (ResultSet rs = md.getTables(null, null, "%", new String[] {"TABLE"})) {
                while (rs.next()) tables++;
            }
            try (ResultSet rs = md.getColumns(null, null, "sales", null)) {
                while (rs.next()) columns++;
            }
            System.out.println("tables " + tables);
            System.out.println("sales_columns " + columns);
            String sql = "SELECT item_id, SUM(units) AS u FROM sales WHERE location_id = ? GROUP BY item_id ORDER BY item_id";
            try (PreparedStatement ps = c.prepareStatement(sql)) {
                ps.setString(1, "store_01");
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) System.out.println("row " + rs.getString(1) + " " + rs.getDouble(2));
                }
            }
            try (Statement st = c.createStatement()) {
                st.executeUpdate("INSERT INTO sales SELECT * FROM sales");
                System.out.println("insert accepted");
            } catch (SQLException e) {
                System.out.println("insert_refused " + e.getSQLState());
            }
        }
    }
}
