"""The subset of grpcurl the gateways' printed lines use, on grpcio (the gRPC C core
client) with server reflection, for machines without grpcurl:

    grpcurl.py -plaintext [-H 'key: value']... [-d JSON] ADDRESS list [SERVICE]
    grpcurl.py -plaintext [-H 'key: value']... [-d JSON] ADDRESS SERVICE/METHOD

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
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "-plaintext":
            plaintext = True
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
    if not plaintext:
        sys.exit("grpcurl.py: only -plaintext is supported")
    if len(rest) < 2:
        sys.exit(__doc__)
    return headers, data, rest[0], rest[1:]


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
    headers, data, address, command = parse(sys.argv[1:])
    channel = grpc.intercept_channel(grpc.insecure_channel(address), Headers(headers))
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
