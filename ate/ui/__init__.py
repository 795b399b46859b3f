"""The operator's page: a view model of the station (view.py), its message catalogs
(i18n/), and the Starlette app the station daemon mounts (app.py).

May import ate.model and ate.scheduler (events only); the station imports this, not
the other way round.
"""
