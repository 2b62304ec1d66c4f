
o


service.name

checkoutOM	§ß^Â	“í*
card declined2
	component
testJR