from django.urls import path

from . import views

app_name = "mirror"
urlpatterns = [
    path("import/", views.import_upload, name="import_upload"),
    path("import/<int:batch_id>/", views.import_detail, name="import_detail"),
    path("import/<int:batch_id>/progress/", views.import_progress, name="import_progress"),
    path("import/<int:batch_id>/confirm/", views.import_confirm, name="import_confirm"),
]
urlpatterns += [
    path("reconciliation/", views.reconciliation, name="reconciliation"),
    path("reconciliation/run/", views.reconciliation_run, name="reconciliation_run"),
    path("reconciliation/export.csv", views.reconciliation_csv, name="reconciliation_csv"),
    path("reconciliation/<int:discrepancy_id>/resolve/", views.discrepancy_resolve, name="discrepancy_resolve"),
]
urlpatterns += [
    path("rollout/", views.rollout, name="rollout"),
    path("rollout/stage/", views.rollout_stage, name="rollout_stage"),
]
