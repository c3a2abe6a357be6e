/// Placeholder until the dashboard (issue #14 §3) lands: the dash work replaces this file.
enum DashboardPage {
    static let html = """
        <!doctype html><html><head><meta charset="utf-8"><title>wsgate</title></head><body><h1>wsgate</h1>
        <p>The dashboard is not built in yet: see <a href="/connections">/connections</a> and <a href="/metrics">/metrics</a>.</p>
        </body></html>
        """
}
