{{- define "plx.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "plx.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "plx.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "plx.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "plx.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "plx.runsNamespace" -}}
{{- default .Release.Namespace .Values.runsNamespace -}}
{{- end -}}

{{- define "plx.databaseSecret" -}}
{{- default (printf "%s-database" (include "plx.fullname" .)) .Values.database.existingSecret -}}
{{- end -}}

{{- define "plx.dataClaim" -}}
{{- default (printf "%s-data" (include "plx.fullname" .)) .Values.persistence.existingClaim -}}
{{- end -}}
