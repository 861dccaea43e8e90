"""Data quality: Great Expectations suites derived from the table contracts (``suites``) and the
checks the DAGs and ``omicslake quality`` run between steps (``checks.check_tables``).
"""

__all__ = ["checks"]
