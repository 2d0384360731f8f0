{{/* Chart name, truncated to the 63 characters Kubernetes allows in a name. */}}
{{- define "nhi-detector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name used for every object of this chart. */}}
{{- define "nhi-detector.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "nhi-detector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nhi-detector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "nhi-detector.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 }}
{{ include "nhi-detector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: worker
{{- end -}}

{{- define "nhi-detector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "nhi-detector.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "nhi-detector.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Kafka security protocol: explicit, or derived from the sasl and tls switches. */}}
{{- define "nhi-detector.securityProtocol" -}}
{{- $k := .Values.kafka -}}
{{- if $k.securityProtocol -}}
{{- $k.securityProtocol -}}
{{- else if and $k.sasl.enabled $k.tls.enabled -}}
SASL_SSL
{{- else if $k.sasl.enabled -}}
SASL_PLAINTEXT
{{- else if $k.tls.enabled -}}
SSL
{{- else -}}
PLAINTEXT
{{- end -}}
{{- end -}}
