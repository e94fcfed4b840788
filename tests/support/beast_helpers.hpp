// Internal to tests/support: Beast-facing helpers the fakes share (turning a parsed request
// head into a recorded_request). Only .cpp files include this, to keep Beast out of headers.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/url/parse.hpp>

#include "support/http_record.hpp"

namespace msiproxy::test::detail {

inline recorded_request record_head(const boost::beast::http::request_header<>& head,
                                    std::uint64_t connection_id) {
    recorded_request r;
    r.connection_id = connection_id;
    r.method = std::string(head.method_string());
    r.target = std::string(head.target());
    r.version = head.version();
    for (const auto& field : head)
        r.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    const auto q = r.target.find('?');
    r.path = r.target.substr(0, q);
    if (auto parsed = boost::urls::parse_uri_reference(r.target)) {
        for (auto param : parsed->params())
            r.query[param.key] = param.value;
    }
    return r;
}

}  // namespace msiproxy::test::detail
