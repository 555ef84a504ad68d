-- wrk script: POST one job per request to the storetest component.
wrk.method = "POST"
wrk.body = '{"queue": "bench", "payload": {"effect": "x"}}'
wrk.headers["Content-Type"] = "application/json"
