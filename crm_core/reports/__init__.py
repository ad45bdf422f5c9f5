"""The head of sales' reports: activity, funnel, sources, ABC/XYZ (each a module)."""
