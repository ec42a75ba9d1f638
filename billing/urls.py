"""The manager's pages of the spreadsheet import, reconciliation and the staged rollout. Their URL
names keep the namespace `mirror` that templates and links already use."""

from django.urls import path

from .reconciliation import views as reconciliation
from .rollout import views as rollout
from .sheets import views as sheets

app_name = "mirror"
urlpatterns = [
    path("import/", sheets.import_upload, name="import_upload"),
    path("import/<int:batch_id>/", sheets.import_detail, name="import_detail"),
    path("import/<int:batch_id>/progress/", sheets.import_progress, name="import_progress"),
    path("import/<int:batch_id>/confirm/", sheets.import_confirm, name="import_confirm"),
    path("import/<int:batch_id>/columns/", sheets.import_columns, name="import_columns"),
]
urlpatterns += [
    path("reconciliation/", reconciliation.reconciliation, name="reconciliation"),
    path("reconciliation/run/", reconciliation.reconciliation_run, name="reconciliation_run"),
    path("reconciliation/export.csv", reconciliation.reconciliation_csv, name="reconciliation_csv"),
    path("reconciliation/<int:discrepancy_id>/resolve/", reconciliation.discrepancy_resolve,
         name="discrepancy_resolve"),
]
urlpatterns += [
    path("rollout/", rollout.rollout, name="rollout"),
    path("rollout/stage/", rollout.rollout_stage, name="rollout_stage"),
    path("rollout/locations/<int:location_id>/stage/", rollout.rollout_location_stage, name="rollout_location_stage"),
]
