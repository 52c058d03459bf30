-- http_post.lua - wrk script for bench/http.sh: POST /v1/items with a small
-- JSON body and the bearer token from $TN_TOKEN (new generated id each time).
wrk.method = "POST"
wrk.body = '{"data":{"kind":"sensor","temp":21.5,"tags":["a","b"],"ok":true}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TN_TOKEN")
