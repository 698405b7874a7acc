"""The KPI dashboard over HTTP: the pages, the JSON API, the view model both share, and the SVG
charts the pages draw."""
