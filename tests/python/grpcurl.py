"""The subset of grpcurl the gateways' printed lines use, on grpcio (the gRPC C core
client) with server reflection, for machines without grpcurl:

    grpcurl.py (-plaintext | -cacert CA [-cert CRT -key KEY]) [-H 'key: value']...
               [-d JSON] ADDRESS (list [SERVICE] | SERVICE/METHOD)

Under TLS the server's name is checked against ADDRESS's host, as grpcurl does.

Like grpcurl, reflection requests carry the -H headers too; a reply is printed as JSON;
a failed call prints the code and message and exits with 64 + the gRPC code; a failure
before the call (reflection refused or unreachable) exits with 1.
"""

import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def parse(argv):
    headers, data, plaintext, rest = [], "{}", False, []
    files = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "-plaintext":
            plaintext = True
        elif arg in ("-cacert", "-cert", "-key"):
            i += 1
            with open(argv[i], "rb") as f:
                files[arg[1:]] = f.read()
        elif arg == "-H":
            i += 1
            key, _, value = argv[i].partition(":")
            headers.append((key.strip().lower(), value.strip()))
        elif arg == "-d":
            i += 1
            data = argv[i]
        elif arg.startswith("-"):
            sys.exit(f"grpcurl.py: unsupported flag {arg}")
        else:
            rest.append(arg)
        i += 1
    if plaintext == ("cacert" in files):
        sys.exit("grpcurl.py: give -plaintext or -cacert")
    if len(rest) < 2:
        sys.exit(__doc__)
    return headers, data, files, rest[0], rest[1:]


def open_channel(address, files):
    if not files:
        return grpc.insecure_channel(address)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=files["cacert"],
        private_key=files.get("key"),
        certificate_chain=files.get("cert"),
    )
    return grpc.secure_channel(address, credentials)


class Headers(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds the -H headers to every call, reflection included."""

    def __init__(self, headers):
        self.headers = headers

    def _details(self, details):
        metadata = list(details.metadata or []) + self.headers
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._details(details), requests)


def code_name(error):
    return "".join(part.capitalize() for part in error.code().name.split("_"))


def rpc_error(error):
    return f"rpc error: code = {code_name(error)} desc = {error.details()}"


def fail_before_call(what, error):
    print(f"{what}: {rpc_error(error)}", file=sys.stderr)
    sys.exit(1)


def fail(error):
    print(f"ERROR:\n  Code: {code_name(error)}\n  Message: {error.details()}", file=sys.stderr)
    sys.exit(64 + error.code().value[0])


def main():
    headers, data, files, address, command = parse(sys.argv[1:])
    channel = grpc.intercept_channel(open_channel(address, files), Headers(headers))
    database = ProtoReflectionDescriptorDatabase(channel)
    if command[0] == "list":
        try:
            if len(command) == 1:
                for service in database.get_services():
                    print(service)
            else:
                pool = descriptor_pool.DescriptorPool(database)
                for method in pool.FindServiceByName(command[1]).methods:
                    print(f"{command[1]}.{method.name}")
        except grpc.RpcError as error:
            fail_before_call("Failed to list services", error)
        return
    service_name, _, method_name = command[0].rpartition("/")
    try:
        pool = descriptor_pool.DescriptorPool(database)
        method = pool.FindServiceByName(service_name).FindMethodByName(method_name)
    except grpc.RpcError as error:
        fail_before_call(f'Error invoking method "{command[0]}"', error)
    except KeyError:
        sys.exit(f'Error invoking method "{command[0]}": symbol not found')
    request_class = message_factory.GetMessageClass(method.input_type)
    reply_class = message_factory.GetMessageClass(method.output_type)
    call = channel.unary_unary(
        f"/{service_name}/{method_name}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=reply_class.FromString,
    )
    try:
        reply = call(json_format.Parse(data, request_class()), timeout=10)
    except grpc.RpcError as error:
        fail(error)
    print(json_format.MessageToJson(reply))


if __name__ == "__main__":
    main()
