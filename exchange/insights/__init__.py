"""Member insights (DESIGN section 12, decision 0018): profiles and RFM quintiles,
segments, targeted campaigns with control groups and their offers, KPIs and reports."""
