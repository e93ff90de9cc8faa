// Listening sockets opened by the engine and handed to workers.
#pragma once

#include <string>

namespace ingestd {

// Splits "127.0.0.1:8080", "[::1]:8080", "localhost:8080". False on a bad form.
bool split_host_port(const std::string &address, std::string *host, int *port);

// A non-blocking TCP socket with SO_REUSEADDR and SO_REUSEPORT, bound and
// listening. *port (in: wanted, 0 = any; out: bound). `first`: the first
// socket of this address, checked to be free. -1 and *why on failure.
int open_listen_socket(const std::string &host, int *port, bool first, std::string *why);

}  // namespace ingestd
