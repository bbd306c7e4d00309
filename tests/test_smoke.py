def test_report(db):
    report = db.execute("SELECT get_report()").fetchone()[0]
    print(report)
    assert report["metrics_level"] == "basic"
