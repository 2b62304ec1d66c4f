
Ÿ


service.name

checkoutşw
*GET /09§ß^Â	“íAã^Â	“íJ
http.request.method
GETJ 
http.response.status_codeÈ‚
"*SELECT09±ß^Â	“íAà^Â	“íJ
http.request.method
GETJ 
http.response.status_codeÈ