// Entry point: command line, config, logging, then the app. Nothing else lives here.
#include <cstdio>

#include "version.hpp"

int main() {
    std::puts("msiproxy " MSIPROXY_VERSION);
    return 0;
}
