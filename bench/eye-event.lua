-- wrk script: POST one event per request to the eye (session id from EYE_SESSION).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"session": {"id": "' .. os.getenv("EYE_SESSION") .. '"}, "category": "page interaction", "name": "pageview", "data": {"host": "www.example.com", "path": "/"}, "timestamp": "2021-06-15 00:00:00"}'
