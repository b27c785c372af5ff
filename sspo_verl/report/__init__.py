"""Reading logged metrics of several runs and reporting them side by side (``sspo-report``); no verl import.

Modules: ``parts`` (metric log parts of resumed runs).
"""
