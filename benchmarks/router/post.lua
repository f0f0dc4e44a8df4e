-- wrk script: POST one OIP v2 inference request (4 iris rows) to every target.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"inputs":[{"name":"input-0","shape":[4,4],"datatype":"FP64",' ..
  '"data":[5.1,3.5,1.4,0.2,6.2,2.9,4.3,1.3,7.7,3.0,6.1,2.3,5.0,3.4,1.5,0.2]}]}'
