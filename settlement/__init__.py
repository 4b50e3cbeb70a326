"""Settlement: periods, lot attribution, pricing, netting, money journal, reports."""
