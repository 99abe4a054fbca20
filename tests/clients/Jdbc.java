// pgjdbc through blastwall with autocommit off (BEGIN goes in the same batch as the
// transaction's first statement, a DELETE), and a batch of 120 single-row UPDATEs.
import java.sql.*;

public class Jdbc {
    public static void main(String[] a) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + a[0] + "/" + a[1] + "?sslmode=disable";
        try (Connection c = DriverManager.getConnection(url, "trust_user", "")) {
            c.setAutoCommit(false);
            PreparedStatement d = c.prepareStatement("DELETE FROM child WHERE id = ?");
            d.setInt(1, 11);
            System.out.println(d.executeUpdate());
            PreparedStatement u = c.prepareStatement("UPDATE parent SET v = v + 1 WHERE id = ?");
            for (int i = 1; i <= 120; i++) {
                u.setInt(1, i);
                u.addBatch();
            }
            int sum = 0;
            for (int x : u.executeBatch()) sum += x;
            System.out.println(sum);
            c.commit();
            // The 6th execution of a statement uses a named server-side prepared statement.
            for (int i = 0; i < 8; i++) {
                d.setInt(1, 300 + i);
                System.out.println(d.executeUpdate());
                c.commit();
            }
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT sum(v) FROM parent")) {
                rs.next();
                System.out.println(rs.getLong(1));
            }
            c.commit();
        }
    }
}
