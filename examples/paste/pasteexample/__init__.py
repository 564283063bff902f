"""A tiny PasteDeploy application and filter for rwsgi's example."""
