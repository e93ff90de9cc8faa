# Replaces @OPTIONS@ in IN with the contents of OPTIONS, writing OUT.
file(READ ${IN} _page)
file(READ ${OPTIONS} _opts)
string(REPLACE "@OPTIONS@\n" "${_opts}" _page "${_page}")
file(WRITE ${OUT} "${_page}")
